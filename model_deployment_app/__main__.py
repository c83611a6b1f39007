from model_deployment_app.cli import main

raise SystemExit(main())
