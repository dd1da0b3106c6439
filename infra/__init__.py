"""Cat Watcher GPU slicing: stack config -> validated model -> Pulumi components."""
