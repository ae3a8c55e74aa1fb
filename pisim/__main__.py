from pisim.cli import main

raise SystemExit(main())
