package builder

import "testing"

func TestIsDummyAuth(t *testing.T) {
	tests := []struct {
		name  string
		entry map[string]any
		want  bool
	}{
		{"empty entry", map[string]any{}, true},
		{"placeholder auth", map[string]any{"auth": "ZW1wdHk6ZW1wdHk="}, true},
		{"placeholder user and password, any email", map[string]any{"username": "empty", "password": "empty", "email": "a@b.c"}, true},
		{"empty and null fields", map[string]any{"auth": "", "identitytoken": "", "registrytoken": nil}, true},
		{"real auth", map[string]any{"auth": "dXNlcjpzZWNyZXQ="}, false},
		{"real user", map[string]any{"auth": "ZW1wdHk6ZW1wdHk=", "username": "kubeadmin"}, false},
		{"real password", map[string]any{"username": "empty", "password": "s3cret"}, false},
		{"identity token", map[string]any{"auth": "ZW1wdHk6ZW1wdHk=", "identitytoken": "eyJhbGciOi"}, false},
	}
	for _, tt := range tests {
		if got := isDummyAuth(tt.entry); got != tt.want {
			t.Errorf("isDummyAuth(%v) [%s] = %v, want %v", tt.entry, tt.name, got, tt.want)
		}
	}
}
