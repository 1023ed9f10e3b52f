package dataverse

import "testing"

// FuzzParseBatchRequest: the emulator's $batch parser either returns the operations (at most 1,000, each
// with a method and a path) or a 400 OData error; it never panics.
func FuzzParseBatchRequest(f *testing.F) {
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: application/http\r\n\r\nGET /api/data/v9.2/WhoAmI HTTP/1.1\r\n\r\n--b--\r\n"))
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\nPOST contacts HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}\r\n--c--\r\n--b--\r\n"))
	f.Add("multipart/mixed", []byte(""))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		items, ops, aerr := parseBatch(ctype, body)
		if aerr != nil {
			if aerr.status != 400 {
				t.Fatalf("refused with status %d, want 400", aerr.status)
			}
			return
		}
		if ops > maxBatchOperations {
			t.Fatalf("%d operations accepted, the limit is %d", ops, maxBatchOperations)
		}
		n := 0
		for _, it := range items {
			if it.op != nil {
				n++
				if it.op.method == "" {
					t.Fatal("an operation without a method")
				}
			}
			for _, op := range it.changeSet {
				n++
				if op.method == "" {
					t.Fatal("an operation without a method")
				}
			}
		}
		if n != ops {
			t.Fatalf("%d operations counted, %d parsed", ops, n)
		}
	})
}
