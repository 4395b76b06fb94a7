"""`python -m trainer_gui` behaves like the `trainer-gui` command."""

from trainer_gui.cli.main import main

raise SystemExit(main())
