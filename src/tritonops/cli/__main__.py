"""``python -m tritonops.cli``."""

from tritonops.cli import main

main()
