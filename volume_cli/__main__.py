"""Entry point of the `volume` command (also `python -m volume_cli`).

Importing the commands loads torch and MediaPipe (a second or two); a Ctrl-C during that import
ends with the same one-line message and exit status as one during a command, not a traceback.
"""

import sys


def main() -> None:
    try:
        from volume_cli.cli import app
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(130)
    app()


if __name__ == "__main__":
    main()
