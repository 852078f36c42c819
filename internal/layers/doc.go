// Package layers holds no code: its test keeps the pipeline's layers
// pointing one way. storage/ (table layout, typed operations) imports
// neither aggregator/ (the stages that use it) nor query/ (the API that
// reads it), and query/ does not import aggregator/. Within query/,
// planning (query/plan) imports neither the edge (query) nor the engines
// (query/engine/...), and the engines do not import the edge. See
// docs/architecture.md.
package layers
