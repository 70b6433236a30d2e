package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// A progress line is one line on standard error that a long command
// (dead redrive --all, replay --wait) rewrites in place with \r, then clears
// when it ends. It is drawn only when standard error is a terminal, never
// with --json: a script or a log file sees only the final answer.

// terminalWriter returns w when it is a terminal (a character device),
// else nil.
func terminalWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	info, err := f.Stat()
	if err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return w
}

// progressLine rewrites one line of w; with a nil w it draws nothing.
type progressLine struct {
	w     io.Writer
	width int // of the last line drawn, to blank what a shorter one leaves
}

// newProgress returns the command's progress line: on standard error when
// it is a terminal and --json is off, else one that draws nothing.
func (c *cli) newProgress() *progressLine {
	if c.jsonOut {
		return &progressLine{}
	}
	return &progressLine{w: c.progressTo}
}

// draw replaces the line with s.
func (p *progressLine) draw(s string) {
	if p.w == nil {
		return
	}
	n := utf8.RuneCountInString(s)
	pad := ""
	if n < p.width {
		pad = strings.Repeat(" ", p.width-n)
	}
	fmt.Fprintf(p.w, "\r%s%s", s, pad)
	p.width = n
}

// clear blanks the line and leaves the cursor at its start.
func (p *progressLine) clear() {
	if p.w == nil || p.width == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
	p.width = 0
}

// barWidth is the number of cells of a progress bar.
const barWidth = 30

// renderBar renders what of total is done as a bar with its percentage and
// counts, after label: "label [#########.....]  30% 300/1000 4s". With no
// total (0 or less) it shows the count alone: "label 300 4s".
func renderBar(label string, done, total int64, elapsed time.Duration) string {
	secs := elapsed.Truncate(time.Second).String()
	if total <= 0 {
		return fmt.Sprintf("%s %d %s", label, done, secs)
	}
	done = max(0, min(done, total))
	filled := int(done * barWidth / total)
	return fmt.Sprintf("%s [%s%s] %3d%% %d/%d %s", label, strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled),
		done*100/total, done, total, secs)
}
