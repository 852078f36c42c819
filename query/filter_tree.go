package query

import (
	"fmt"
	"slices"
)

// filterTree walks a FilterExpression (andGroup, orGroup, notExpression,
// filter) checking its shape and bounds, and builds a tree of N from it:
// and, or and not make the inner nodes, leaf compiles each filter. runReport
// and runRealtimeReport build different trees with the same rules and
// error messages.
type filterTree[N any] struct {
	and, or func([]N) N
	not     func(N) N
	leaf    func(f *Filter, path string) (N, *apiError)
	nodes   int
}

// compile builds the tree of e, the request's field (dimensionFilter or
// metricFilter). Errors name the offending path.
func (t *filterTree[N]) compile(e *FilterExpression, field string) (N, *apiError) {
	return t.expr(e, field, 0)
}

func (t *filterTree[N]) expr(e *FilterExpression, path string, depth int) (N, *apiError) {
	var zero N
	t.nodes++
	switch {
	case t.nodes > maxFilterNodes:
		return zero, invalidArgument("%s: a filter may hold at most %d expressions.", path, maxFilterNodes)
	case depth > maxFilterDepth:
		return zero, invalidArgument("%s: filters may nest at most %d levels deep.", path, maxFilterDepth)
	case countSet(e.AndGroup != nil, e.OrGroup != nil, e.NotExpression != nil, e.Filter != nil) != 1:
		return zero, invalidArgument("%s: set exactly one of andGroup, orGroup, notExpression or filter.", path)
	case e.AndGroup != nil:
		kids, err := t.group(e.AndGroup, path+".andGroup", depth)
		if err != nil {
			return zero, err
		}
		return t.and(kids), nil
	case e.OrGroup != nil:
		kids, err := t.group(e.OrGroup, path+".orGroup", depth)
		if err != nil {
			return zero, err
		}
		return t.or(kids), nil
	case e.NotExpression != nil:
		kid, err := t.expr(e.NotExpression, path+".notExpression", depth+1)
		if err != nil {
			return zero, err
		}
		return t.not(kid), nil
	}
	return t.leaf(e.Filter, path+".filter")
}

func (t *filterTree[N]) group(g *FilterExpressionList, path string, depth int) ([]N, *apiError) {
	if len(g.Expressions) == 0 {
		return nil, invalidArgument("%s.expressions: a group needs at least one expression.", path)
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

// countSet is how many of bs are true.
func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// all reports whether every leaf of n satisfies ok (true for nil).
func (n *filterNode) all(ok func(*filterLeaf) bool) bool {
	if n == nil {
		return true
	}
	if n.leaf != nil && !ok(n.leaf) {
		return false
	}
	if n.not != nil && !n.not.all(ok) {
		return false
	}
	for _, k := range append(slices.Clip(n.and), n.or...) {
		if !k.all(ok) {
			return false
		}
	}
	return true
}

// joins lists the dictionary joins the filter's dimensions read; nil for a
// nil filter.
func (n *filterNode) joins() []*joinDef {
	if n == nil {
		return nil
	}
	var out []*joinDef
	for _, k := range append(append([]*filterNode(nil), n.and...), n.or...) {
		out = append(out, k.joins()...)
	}
	if n.not != nil {
		out = append(out, n.not.joins()...)
	}
	if n.leaf != nil && n.leaf.dim != nil {
		out = append(out, n.leaf.dim.joins...)
	}
	return out
}
