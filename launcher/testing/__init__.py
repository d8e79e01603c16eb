"""Test tooling shipped with the launcher (and in its image): the reference endpoint
(``reference_endpoint``, with ``oracle`` and ``faults``) and synthetic datasets. Nothing here is
used by a normal evaluation run."""
