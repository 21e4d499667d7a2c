from machine.cli import main

main()
