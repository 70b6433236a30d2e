package gateway

import (
	"fmt"
	"slices"
)

// maxNameDistance is how far (in edits) a name may be from a known one to
// be suggested as a typo of it.
const maxNameDistance = 2

// nearestName returns the candidate closest to name by edit distance
// (insertions, deletions, substitutions and swaps of adjacent characters),
// when it is at most maxNameDistance edits away and is not name itself; the
// alphabetically first among equals; "" when none is close.
func nearestName(name string, candidates []string) string {
	best, bestDist := "", maxNameDistance+1
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if c == name {
			continue
		}
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean is the suggestion to append to a message: `; did you mean
// "x"?`, or "" when no candidate is close to name.
func didYouMean(name string, candidates []string) string {
	if near := nearestName(name, candidates); near != "" {
		return fmt.Sprintf("; did you mean %q?", near)
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b,
// by bytes (names are ASCII): the fewest insertions, deletions,
// substitutions and transpositions of adjacent bytes that turn a into b,
// no substring being edited twice.
func editDistance(a, b string) int {
	if d := len(a) - len(b); d > maxNameDistance || -d > maxNameDistance {
		return max(d, -d) // too far apart in length to be a typo
	}
	// Three rows of the dynamic programming table: i-2, i-1 and i.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
