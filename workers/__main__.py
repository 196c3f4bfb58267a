from mahsm.workers.main import main

main()
