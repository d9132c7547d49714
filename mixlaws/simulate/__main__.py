"""``python -m mixlaws.simulate --out fixtures/`` regenerates the bundled fixtures."""

from ._sweep import main

raise SystemExit(main())
