// Package layers holds no code: its test keeps the pipeline's layers
// pointing one way. storage/ (table layout, typed operations) imports
// neither aggregator/ (the stages that use it) nor query/ (the API that
// reads it), and query/ does not import aggregator/. See
// docs/architecture.md.
package layers
