"""Label quality: aggregation (majority vote; Dawid-Skene and friends through crowd-kit),
adaptive redundancy and answer checks, gold questions, and relabel-or-label-new; `planning`
puts the last three into a round's plan."""
