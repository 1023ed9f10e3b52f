package mapping

import (
	"strings"
	"unicode/utf8"
)

// didYouMean suggests the known name closest to a name that is not known, as ", did you mean X?" (empty when
// none is close): a typo such as Titel for Title, or a custom field without its __c. Names compare without
// case, as both services match them.
func didYouMean(name string, known []string) string {
	if best := closest(name, known); best != "" {
		return `; did you mean "` + best + `"?`
	}
	return ""
}

// closest returns the known name at the smallest edit distance from name, if that distance is small for
// the name's length (at most a third of it, and at most 3), or the name itself plus "__c"; "" otherwise.
func closest(name string, known []string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return ""
	}
	limit := min(3, max(1, utf8.RuneCountInString(n)/3))
	best, bestD := "", limit+1
	for _, k := range known {
		kl := strings.ToLower(k)
		if kl == n+"__c" {
			return k
		}
		if d := editDistance(n, kl, bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b (insertions, deletions, substitutions
// and transpositions of neighbours, each 1: "Titel" is one from "Title"), or bound once it cannot be below it.
func editDistance(a, b string, bound int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= bound || -d >= bound {
		return bound
	}
	rows := [3][]int{make([]int, len(rb)+1), make([]int, len(rb)+1), make([]int, len(rb)+1)}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		pp, prev, cur := rows[(i+1)%3], rows[(i+2)%3], rows[i%3]
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= bound {
			return bound
		}
	}
	return min(bound, rows[len(ra)%3][len(rb)])
}

// fieldNames lists the schema's field names.
func (s *SourceSchema) fieldNames() []string {
	out := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		out[i] = f.Name
	}
	return out
}

// columnNames lists the table's column names.
func (d *DestSchema) columnNames() []string {
	out := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		out[i] = c.LogicalName
	}
	return out
}
