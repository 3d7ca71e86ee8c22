#include "console/line_editor.h"

#include <cstring>

namespace cohort::console {

namespace {
constexpr uint8_t kCtrlC = 0x03;
constexpr uint8_t kBs = 0x08;
constexpr uint8_t kLf = 0x0a;
constexpr uint8_t kCr = 0x0d;
constexpr uint8_t kCtrlU = 0x15;
constexpr uint8_t kEsc = 0x1b;
constexpr uint8_t kDel = 0x7f;

void erase_chars(size_t n, Output& out) {
    for (size_t i = 0; i < n; ++i) out.write("\b \b", 3);
}
} // namespace

const char* LineEditor::history(size_t i) const {
    if (i >= hist_count_) return "";
    const size_t oldest = (hist_next_ + kHistory - hist_count_) % kHistory;
    return hist_[(oldest + i) % kHistory];
}

void LineEditor::reset() {
    len_ = 0;
    overflow_ = false;
    esc_ = Esc::None;
    browse_ = 0;
}

void LineEditor::remember(const char* s, size_t n) {
    if (n == 0) return;
    // A repeated command is kept once, as shells do.
    if (hist_count_ > 0 && std::strcmp(history(hist_count_ - 1), s) == 0) return;
    std::memcpy(hist_[hist_next_], s, n);
    hist_[hist_next_][n] = 0;
    hist_next_ = (hist_next_ + 1) % kHistory;
    if (hist_count_ < kHistory) ++hist_count_;
}

void LineEditor::replace_line(const char* s, size_t n, Output& out) {
    erase_chars(len_, out);
    std::memcpy(buf_, s, n);
    len_ = n;
    out.write(buf_, len_);
}

LineEditor::Event LineEditor::feed(uint8_t byte, Output& out) {
    const bool after_cr = last_cr_;
    last_cr_ = byte == kCr;
    if (esc_ == Esc::Esc) {
        esc_ = (byte == '[' || byte == 'O') ? Esc::Csi : Esc::None;
        return Event::None;
    }
    if (esc_ == Esc::Csi) {
        // Parameters and intermediates (0x20-0x3F) continue the sequence; a final byte ends it.
        if (byte >= 0x20 && byte <= 0x3f) return Event::None;
        esc_ = Esc::None;
        if (overflow_) return Event::None;
        if (byte == 'A' && browse_ < hist_count_) {
            ++browse_;
            const char* h = history(hist_count_ - browse_);
            replace_line(h, std::strlen(h), out);
        } else if (byte == 'B' && browse_ > 0) {
            --browse_;
            if (browse_ == 0) {
                replace_line("", 0, out);
            } else {
                const char* h = history(hist_count_ - browse_);
                replace_line(h, std::strlen(h), out);
            }
        }
        return Event::None;
    }
    switch (byte) {
    case kEsc: esc_ = Esc::Esc; return Event::None;
    case kLf:
        if (after_cr) return Event::None; // CR LF is one Enter
        [[fallthrough]];
    case kCr: {
        out.write("\r\n", 2);
        const bool too_long = overflow_;
        if (!too_long) {
            std::memcpy(done_, buf_, len_);
            done_len_ = len_;
            done_[done_len_] = 0;
            remember(done_, done_len_);
        }
        reset();
        return too_long ? Event::TooLong : Event::Line;
    }
    case kCtrlC:
        out.write("^C\r\n", 4);
        reset();
        return Event::Cancelled;
    case kCtrlU:
        if (!overflow_) erase_chars(len_, out);
        reset();
        return Event::None;
    case kBs:
    case kDel:
        if (len_ > 0 && !overflow_) {
            --len_;
            erase_chars(1, out);
        }
        return Event::None;
    default: break;
    }
    if (byte < 0x20 || byte > 0x7e) return Event::None; // control or non-ASCII: dropped
    if (overflow_) return Event::None;
    if (len_ == kMaxLine) {
        overflow_ = true; // the line is lost; say so at Enter
        return Event::None;
    }
    browse_ = 0;
    buf_[len_++] = static_cast<char>(byte);
    out.write(buf_ + len_ - 1, 1);
    return Event::None;
}

} // namespace cohort::console
