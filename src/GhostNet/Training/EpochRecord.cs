namespace GhostNet.Training;

/// <summary>
/// One finished epoch as the run log shows it. Checkpoints carry the whole history, so the CSV
/// log and the plots are rebuilt from the checkpoint a run resumes from: a crash between writing
/// the checkpoint and the log never loses or repeats a row.
/// </summary>
public sealed record EpochRecord(
    int Epoch, float Lr, double TrainLoss, double TrainTop1, double TrainTop5, double ValLoss, double ValTop1, double ValTop5,
    double Seconds, double ImagesPerSecond);
