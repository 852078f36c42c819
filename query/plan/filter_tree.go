package plan

import (
	"fmt"
	"slices"
)

// FilterTree walks a FilterExpression (andGroup, orGroup, notExpression,
// filter) checking its shape and bounds, and builds a tree of N from it:
// and, or and not make the inner nodes, leaf compiles each filter. runReport
// and runRealtimeReport build different trees with the same rules and
// error messages.
type FilterTree[N any] struct {
	And, Or func([]N) N
	Not     func(N) N
	Leaf    func(f *Filter, path string) (N, *Error)
	nodes   int
}

// Compile builds the tree of e, the request's field (dimensionFilter or
// metricFilter). Errors name the offending path.
func (t *FilterTree[N]) Compile(e *FilterExpression, field string) (N, *Error) {
	return t.expr(e, field, 0)
}

func (t *FilterTree[N]) expr(e *FilterExpression, path string, depth int) (N, *Error) {
	var zero N
	t.nodes++
	switch {
	case t.nodes > maxFilterNodes:
		return zero, InvalidArgument("%s: a filter may hold at most %d expressions.", path, maxFilterNodes)
	case depth > maxFilterDepth:
		return zero, InvalidArgument("%s: filters may nest at most %d levels deep.", path, maxFilterDepth)
	case CountSet(e.AndGroup != nil, e.OrGroup != nil, e.NotExpression != nil, e.Filter != nil) != 1:
		return zero, InvalidArgument("%s: set exactly one of andGroup, orGroup, notExpression or filter.", path)
	case e.AndGroup != nil:
		kids, err := t.group(e.AndGroup, path+".andGroup", depth)
		if err != nil {
			return zero, err
		}
		return t.And(kids), nil
	case e.OrGroup != nil:
		kids, err := t.group(e.OrGroup, path+".orGroup", depth)
		if err != nil {
			return zero, err
		}
		return t.Or(kids), nil
	case e.NotExpression != nil:
		kid, err := t.expr(e.NotExpression, path+".notExpression", depth+1)
		if err != nil {
			return zero, err
		}
		return t.Not(kid), nil
	}
	return t.Leaf(e.Filter, path+".filter")
}

func (t *FilterTree[N]) group(g *FilterExpressionList, path string, depth int) ([]N, *Error) {
	if len(g.Expressions) == 0 {
		return nil, InvalidArgument("%s.expressions: a group needs at least one expression.", path)
	}
	kids := make([]N, len(g.Expressions))
	for i := range g.Expressions {
		kid, err := t.expr(&g.Expressions[i], fmt.Sprintf("%s.expressions[%d]", path, i), depth+1)
		if err != nil {
			return nil, err
		}
		kids[i] = kid
	}
	return kids, nil
}

// CountSet is how many of bs are true.
func CountSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// All reports whether every leaf of n satisfies ok (true for nil).
func (n *FilterNode) All(ok func(*FilterLeaf) bool) bool {
	if n == nil {
		return true
	}
	if n.Leaf != nil && !ok(n.Leaf) {
		return false
	}
	if n.Not != nil && !n.Not.All(ok) {
		return false
	}
	for _, k := range append(slices.Clip(n.And), n.Or...) {
		if !k.All(ok) {
			return false
		}
	}
	return true
}

// Joins lists the dictionary joins the filter's dimensions read; nil for a
// nil filter.
func (n *FilterNode) Joins() []*JoinDef {
	if n == nil {
		return nil
	}
	var out []*JoinDef
	for _, k := range append(append([]*FilterNode(nil), n.And...), n.Or...) {
		out = append(out, k.Joins()...)
	}
	if n.Not != nil {
		out = append(out, n.Not.Joins()...)
	}
	if n.Leaf != nil && n.Leaf.Dim != nil {
		out = append(out, n.Leaf.Dim.Joins...)
	}
	return out
}
