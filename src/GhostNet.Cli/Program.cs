using System.CommandLine;
using GhostNet.Cli;

var root = new RootCommand("ghostcuda: build, train and inspect GhostNet (Han et al., CVPR 2020).");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(Devices.DevicesCommand());
return root.Parse(args).Invoke();
