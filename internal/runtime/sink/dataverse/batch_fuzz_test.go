package dataverse

import "testing"

// FuzzParseBatchResponse: any $batch answer either yields exactly one result per operation (a status, and
// an error for statuses of 300 and above) or an error; it never panics.
func FuzzParseBatchResponse(f *testing.F) {
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--b--\r\n"), 1)
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n{\"error\":{\"code\":\"0x80044331\",\"message\":\"m\"}}\r\n--c--\r\n--b--\r\n"), 2)
	f.Add("text/plain", []byte("not multipart"), 1)
	f.Fuzz(func(t *testing.T, ctype string, body []byte, n int) {
		n = max(0, min(n, MaxBatchOps))
		results, err := parseBatchResponse(ctype, body, n)
		if err != nil {
			return
		}
		if len(results) != n {
			t.Fatalf("%d results for %d operations", len(results), n)
		}
		for i, r := range results {
			if r.Status == 0 || (r.Status >= 300) != (r.Err != nil) {
				t.Fatalf("result %d: status %d with error %v", i+1, r.Status, r.Err)
			}
		}
	})
}
