"""The fault suite (issue 17 item 6): a package, so its conftest.py does not take the
module name `conftest` from tests/conftest.py, which the other test files import."""
