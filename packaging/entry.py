"""The frozen app's entry script: the same `main()` as the `trainer-gui` console script.

With no command it opens the window (`gui` is the default), so double-clicking works.
TRAINER_GUI_SELFCHECK=1 runs packaging/selfcheck.py instead (the build's own smoke check).
"""

import os

if os.environ.get("TRAINER_GUI_SELFCHECK") == "1":
    import selfcheck

    raise SystemExit(selfcheck.run())

from trainer_gui.cli.main import main

raise SystemExit(main())
