from runlab.cli import main

main()
