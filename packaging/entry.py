"""The frozen app's entry script: the same `main()` as the `trainer-gui` console script.

With no command it opens the window (`gui` is the default), so double-clicking works.
TRAINER_GUI_SELFCHECK=1 runs packaging/selfcheck.py instead (the build's own smoke check);
TRAINER_GUI_SMOKE=1 runs the command (`gui --example`) under packaging/gui_smoke.py, which works
the window headless: opens the example, runs it, reports which process followed the job.
"""

import os
import sys

if os.environ.get("TRAINER_GUI_SELFCHECK") == "1":
    import selfcheck

    raise SystemExit(selfcheck.run())

if os.environ.get("TRAINER_GUI_SMOKE") == "1":
    import gui_smoke  # run() drops TRAINER_GUI_SMOKE: the job host's process starts normally

    raise SystemExit(gui_smoke.run(sys.argv[1:]))

from trainer_gui.cli.main import main

raise SystemExit(main())
