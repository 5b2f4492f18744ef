"""`python -m mlstack.cli`: how the CT trigger and the tests start pipeline runs."""

from mlstack.cli import main

main()
