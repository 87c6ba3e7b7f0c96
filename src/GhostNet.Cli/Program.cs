return await GhostNet.Cli.Root.RunAsync(args);
