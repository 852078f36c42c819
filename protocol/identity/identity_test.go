package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestKeysAreStableAndSeparated(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, SecretLen)
	a, err := New(1, secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(1, secret)
	if a.Client("123.456") != b.Client("123.456") {
		t.Fatal("same site, secret and client id gave two keys")
	}
	if a.Client("123.456") == a.User("123.456") {
		t.Fatal("a client id and a user id with the same text share a key")
	}
	other, _ := New(2, secret)
	if a.Client("123.456") == other.Client("123.456") {
		t.Fatal("two sites share a client's key")
	}
	rotated, _ := New(1, bytes.Repeat([]byte{8}, SecretLen))
	if a.Client("123.456") == rotated.Client("123.456") {
		t.Fatal("a rotated secret gave the same key")
	}
	if a.Client("") != 0 || a.User("") != 0 {
		t.Fatal("an empty id got a key")
	}
	if _, err := New(1, secret[:5]); err == nil {
		t.Fatal("a short secret was taken")
	}
}

func TestClientIDFromCookie(t *testing.T) {
	for in, want := range map[string]string{
		"GA1.1.1234567890.1700000000": "1234567890.1700000000",
		"GA1.2.42.1700000000":         "42.1700000000",
		" 1234567890.1700000000 ":     "1234567890.1700000000",
	} {
		got, err := ClientIDFromCookie(in)
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GA1.1.abc.1700000000", "1.2.3", "GA1.1..1", "x.y"} {
		if _, err := ClientIDFromCookie(in); !errors.Is(err, ErrNotGACookie) {
			t.Errorf("%q: err %v, want ErrNotGACookie", in, err)
		}
	}
}
