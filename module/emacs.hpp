// A thin, exception-based layer over emacs_env for the module's own code.
// Every call into Emacs is checked for a pending non-local exit (a signal,
// a throw, a quit); if there is one, NonLocalExit unwinds the C++ stack to
// the trampoline, which returns to Emacs leaving the exit untouched.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <emacs-module.h>

namespace descent::module {

// Unwinding marker: Emacs already has a pending signal/throw/quit.
struct NonLocalExit {};

// Symbols interned once at load time as global references (they outlive
// every env), like jinx-mod.c and vterm's elisp.c do.
struct Symbols {
  // Type names double as function names: `cons', `float', `vector'.
  emacs_value nil, t, integer, float_, string, vector, cons, symbol;
  emacs_value list, length, car, cdr, make_vector, vconcat, intern, symbol_name, keywordp;
  emacs_value multibyte_string_p, base64_encode_string, define_error, defalias, provide;
  emacs_value point, insert, put_text_property, dired_filename;
  emacs_value descent_error, daemon_unavailable, protocol_mismatch, daemon_error, timeout, quit, daemon_lost;
};
extern Symbols symbols;

class Env {
 public:
  explicit Env(emacs_env* raw) : raw_(raw) {}
  emacs_env* raw() const { return raw_; }

  // Throws NonLocalExit if Emacs has one pending.
  void check() const {
    if (raw_->non_local_exit_check(raw_) != emacs_funcall_exit_return) throw NonLocalExit{};
  }
  emacs_value checked(emacs_value v) const {
    check();
    return v;
  }

  emacs_value intern(const char* name) const { return checked(raw_->intern(raw_, name)); }
  emacs_value funcall(emacs_value f, std::initializer_list<emacs_value> args) const {
    return checked(raw_->funcall(raw_, f, static_cast<ptrdiff_t>(args.size()), const_cast<emacs_value*>(args.begin())));
  }
  bool eq(emacs_value a, emacs_value b) const { return raw_->eq(raw_, a, b); }
  bool is_nil(emacs_value v) const { return !raw_->is_not_nil(raw_, v); }
  emacs_value type_of(emacs_value v) const { return checked(raw_->type_of(raw_, v)); }

  std::int64_t integer(emacs_value v) const { return checked_value(raw_->extract_integer(raw_, v)); }
  double number(emacs_value v) const { return checked_value(raw_->extract_float(raw_, v)); }
  // The UTF-8 text of a string (Emacs refuses raw bytes here; unibyte
  // strings go through bytes()).
  std::string text(emacs_value v) const;
  emacs_value make_integer(std::int64_t i) const { return checked(raw_->make_integer(raw_, i)); }
  emacs_value make_float(double d) const { return checked(raw_->make_float(raw_, d)); }
  emacs_value make_text(std::string_view utf8) const;
  emacs_value make_bytes(std::string_view bytes) const {
    return checked(raw_->make_unibyte_string(raw_, bytes.data(), static_cast<ptrdiff_t>(bytes.size())));
  }
  emacs_value global(emacs_value v) const { return checked(raw_->make_global_ref(raw_, v)); }

  std::size_t vector_size(emacs_value v) const { return checked_value(static_cast<std::size_t>(raw_->vec_size(raw_, v))); }
  emacs_value vector_get(emacs_value v, std::size_t i) const {
    return checked(raw_->vec_get(raw_, v, static_cast<ptrdiff_t>(i)));
  }
  void vector_set(emacs_value v, std::size_t i, emacs_value x) const {
    raw_->vec_set(raw_, v, static_cast<ptrdiff_t>(i), x);
    check();
  }

  // Signals (error-symbol . data) without throwing: safe in catch handlers.
  void signal(emacs_value error, std::initializer_list<emacs_value> data) const noexcept;
  void signal(emacs_value error, std::string_view message) const noexcept;

 private:
  template <class T>
  T checked_value(T v) const {
    check();
    return v;
  }
  emacs_env* raw_;
};

}  // namespace descent::module
