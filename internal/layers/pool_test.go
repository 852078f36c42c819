package layers

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handleTypes are the pgx types that run arbitrary SQL on a connection.
var handleTypes = []string{"pgxpool.Pool", "pgxpool.Conn", "pgx.Conn", "pgx.Tx", "pgx.Batch"}

// handOuts are the exported places allowed to hand a connection out: the
// report pool and the replica it routes to, which are read only.
var handOuts = map[string]bool{
	"OpenReportPool":    true,
	"Replicas.ReadFrom": true,
	// An input: the report pool the replicas fall back to.
	"ReplicaOptions.Primary": true,
}

// TestStorePoolStaysInside: storage/postgres hands none of its connections
// out (no exported field, and no exported function or method returning a
// pool, connection or transaction), so every other package reaches the
// tables through the store's typed operations, and reports read through
// the read-only report pool. A package outside storage/postgres that
// needs the write pool fails here, not in review.
func TestStorePoolStaysInside(t *testing.T) {
	dir := filepath.Join("..", "..", "storage", "postgres")
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				where := d.Name.Name
				if d.Recv != nil && len(d.Recv.List) == 1 {
					recv := typeText(fset, d.Recv.List[0].Type)
					recv = strings.TrimPrefix(recv, "*")
					if !ast.IsExported(recv) {
						continue
					}
					where = recv + "." + where
				}
				if !d.Name.IsExported() || handOuts[where] || d.Type.Results == nil {
					continue
				}
				for _, r := range d.Type.Results.List {
					if h := handle(typeText(fset, r.Type)); h != "" {
						t.Errorf("%s: %s returns a %s: storage/postgres must offer a typed operation instead", fset.Position(d.Pos()), where, h)
					}
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok || !ts.Name.IsExported() {
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, field := range st.Fields.List {
						h := handle(typeText(fset, field.Type))
						if h == "" {
							continue
						}
						if len(field.Names) == 0 {
							t.Errorf("%s: %s embeds a %s", fset.Position(field.Pos()), ts.Name.Name, h)
						}
						for _, n := range field.Names {
							if n.IsExported() && !handOuts[ts.Name.Name+"."+n.Name] {
								t.Errorf("%s: %s.%s is an exported %s: keep it unexported", fset.Position(n.Pos()), ts.Name.Name, n.Name, h)
							}
						}
					}
				}
			}
		}
	}
	if files == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
}

// handle names the connection type t holds, or "".
func handle(t string) string {
	for _, h := range handleTypes {
		if strings.Contains(t, h) {
			return h
		}
	}
	return ""
}

func typeText(fset *token.FileSet, e ast.Expr) string {
	var b strings.Builder
	_ = printer.Fprint(&b, fset, e)
	return b.String()
}
