import CLI

await CoordinatorCLI.main()
