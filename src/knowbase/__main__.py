from knowbase.cli.main import main

main()
