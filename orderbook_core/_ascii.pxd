# The CPython calls the compiled text readers and frame scanners read ``str`` with: the
# characters of an ASCII string are its bytes, so they are read in place.
cdef extern from "Python.h":
    str PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)
    bint PyUnicode_IS_ASCII(object text)
    void* PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
