package sandbox

import (
	"encoding/json"
	"net/http"
	"time"
)

// adminHandler serves the sandbox-wide admin API: the emulators' own admin APIs under /salesforce/ and
// /dataverse/, the shared clock, and reset. See docs/sandbox.md.
func (s *Sandbox) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/salesforce/", http.StripPrefix("/salesforce", s.Salesforce.AdminHandler()))
	mux.Handle("/dataverse/", http.StripPrefix("/dataverse", s.Dataverse.AdminHandler()))
	mux.HandleFunc("GET /clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.clockState())
	})
	mux.HandleFunc("POST /clock/advance", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Duration string `json:"duration"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"duration\": \"<Go duration>\"}: " + err.Error()})
			return
		}
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "duration must be a positive Go duration such as \"80h\""})
			return
		}
		s.Clock.Advance(d)
		writeJSON(w, http.StatusOK, s.clockState())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reset(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Info)
	})
	return mux
}

func (s *Sandbox) clockState() map[string]any {
	return map[string]any{"now": s.Clock.Now().UTC().Format(time.RFC3339Nano), "offset": s.Clock.Offset().String()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
