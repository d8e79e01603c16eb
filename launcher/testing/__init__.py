"""Test tooling shipped with the launcher (and in its image): the reference endpoint's data
helpers and synthetic datasets. Nothing here is used by a normal evaluation run."""
