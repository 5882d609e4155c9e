from tracklight.remote._push import main

raise SystemExit(main())
