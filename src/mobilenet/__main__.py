from mobilenet.cli import main

raise SystemExit(main())
