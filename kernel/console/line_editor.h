// The console's line editor: turns the bytes a terminal sends into finished command lines, and
// says what to echo. Backspace (DEL or BS), Ctrl-U (kill the line), Ctrl-C (abandon it), Enter
// (CR, LF or CR LF), and the up and down arrows (ESC [ A / ESC [ B, or ESC O A / B) to walk the
// history. Other control bytes and escape sequences are ignored, and bytes that are not
// printable ASCII are dropped, so binary garbage cannot reach a command or the screen.
//
// Portable (host-tested): it writes nothing itself; the echo goes to an Output the caller gives.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort::console {

/// Where the editor's echo goes.
class Output {
  public:
    virtual void write(const char* s, size_t n) = 0;

  protected:
    ~Output() = default;
};

class LineEditor {
  public:
    static constexpr size_t kMaxLine = 256;  ///< longest command line, NUL excluded
    static constexpr size_t kHistory = 16;   ///< lines remembered

    enum class Event : uint8_t {
        None,      // keep feeding
        Line,      // line() holds a finished line (already remembered in the history)
        Cancelled, // Ctrl-C: the line was abandoned
        TooLong,   // Enter ended a line longer than kMaxLine: it was dropped
    };

    /// Feeds one byte; echo (if any) goes to `out`.
    Event feed(uint8_t byte, Output& out);
    /// The finished line (valid after Event::Line until the next feed).
    const char* line() const { return done_; }
    size_t line_length() const { return done_len_; }
    /// The line being typed (not NUL-terminated) and its length.
    const char* current() const { return buf_; }
    size_t current_length() const { return len_; }
    /// Lines in the history, newest last.
    size_t history_size() const { return hist_count_; }
    const char* history(size_t i) const; ///< 0 = oldest
    /// Forgets the line being typed (not the history).
    void reset();

  private:
    enum class Esc : uint8_t { None, Esc, Csi };
    void replace_line(const char* s, size_t n, Output& out);
    void remember(const char* s, size_t n);

    char buf_[kMaxLine + 1] = {};
    size_t len_ = 0;
    bool overflow_ = false; // the line outgrew kMaxLine: bytes are dropped until Enter
    bool last_cr_ = false;  // the previous byte was CR: a following LF is the same Enter
    Esc esc_ = Esc::None;
    char done_[kMaxLine + 1] = {};
    size_t done_len_ = 0;
    char hist_[kHistory][kMaxLine + 1] = {};
    size_t hist_count_ = 0;  // lines stored (up to kHistory)
    size_t hist_next_ = 0;   // ring slot the next line goes to
    size_t browse_ = 0;      // 0: editing a new line; k: showing the k-th newest
};

} // namespace cohort::console
