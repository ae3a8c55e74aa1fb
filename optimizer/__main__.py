from pisim.cli.search import main

raise SystemExit(main())
