#!/usr/bin/env python
"""Django's command-line utility for administrative tasks (adiuva.startup prepares the process first)."""

import sys


def main() -> None:
    from adiuva import startup

    startup.prepare()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
