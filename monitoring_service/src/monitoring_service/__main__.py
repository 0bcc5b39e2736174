from monitoring_service.cli import main

raise SystemExit(main())
