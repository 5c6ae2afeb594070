//! Evaluation: the accuracy table of the network beside RLD and MLE.
