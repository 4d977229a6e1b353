"""The networks, their training windows, their numpy decoders and sampling from a trained model
(in the cluster for training and the job's samples, on the user's machine for `composer generate`)."""
