from surgtwin.cli.main import main

raise SystemExit(main())
