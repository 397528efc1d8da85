"""`python -m service.cli`: the `wheelwright` command where no script was installed."""

from service.cli import main

main()
