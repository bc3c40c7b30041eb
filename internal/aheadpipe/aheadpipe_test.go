package aheadpipe

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

func TestAheadPipe(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		pieces []int // write sizes, repeated
		chunks int
	}{
		{"empty", 0, []int{1}, 2},
		{"one byte", 1, []int{1}, 1},
		{"small pieces", 100_000, []int{7, 512, 4093}, 2},
		{"a chunk exactly", chunkSize, []int{chunkSize}, 1},
		{"bigger than a chunk", 3*chunkSize + 17, []int{chunkSize + 5, 33}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.size)
			rand.New(rand.NewSource(int64(tt.size))).Read(data)
			p := New(tt.chunks)
			go func() {
				rest := data
				for i := 0; len(rest) > 0; i++ {
					n := min(tt.pieces[i%len(tt.pieces)], len(rest))
					if _, err := p.Write(rest[:n]); err != nil {
						p.CloseWrite(err)
						return
					}
					rest = rest[n:]
				}
				p.CloseWrite(nil)
			}()
			// Read in pieces that do not line up with the writes.
			var got bytes.Buffer
			buf := make([]byte, 3001)
			for {
				n, err := p.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("read %d bytes, not the %d written", got.Len(), len(data))
			}
		})
	}
}

func TestAheadPipeErrors(t *testing.T) {
	boom := errors.New("boom")
	// The writer's error reaches the reader after what was written.
	p := New(2)
	p.Write([]byte("abc"))
	p.CloseWrite(boom)
	got, err := io.ReadAll(p)
	if string(got) != "abc" || !errors.Is(err, boom) {
		t.Errorf("ReadAll after CloseWrite(boom) = %q, %v; want \"abc\", boom", got, err)
	}
	// A reader that stops fails the writer, even one waiting for room.
	p = New(1)
	done := make(chan error, 1)
	go func() {
		_, err := p.Write(make([]byte, 4*chunkSize))
		done <- err
	}()
	p.CloseRead(boom)
	if err := <-done; !errors.Is(err, boom) {
		t.Errorf("Write after CloseRead(boom) = %v, want boom", err)
	}
}
