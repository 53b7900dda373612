"""Loaded by every Python process that has this folder on PYTHONPATH: when HW2LIB_TEST_UPSTREAM
names a running stand-in (see stand_in.py), urllib sends the data's upstream addresses there."""

from stand_in import install_from_environment

install_from_environment()
