// The Python module frcnn_fast._C. Loading it runs the TORCH_LIBRARY registrations of every
// op; its one Python function reports what this binary was compiled with.
#include <Python.h>

#include <string>

#ifdef FRCNN_FAST_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#ifndef FRCNN_FAST_TORCH_VERSION
#define FRCNN_FAST_TORCH_VERSION "unknown"
#endif
#ifndef FRCNN_FAST_CUDA_ARCHS
#define FRCNN_FAST_CUDA_ARCHS ""
#endif

namespace {

PyObject* build_info(PyObject* /*self*/, PyObject* /*args*/) {
#ifdef FRCNN_FAST_WITH_CUDA
  const int cuda = CUDART_VERSION;
  return Py_BuildValue(
      "{s:N,s:s,s:s,s:s}", "backends", Py_BuildValue("[ss]", "cpu", "cuda"), "cuda_version",
      (std::to_string(cuda / 1000) + "." + std::to_string((cuda % 1000) / 10)).c_str(),
      "cuda_archs", FRCNN_FAST_CUDA_ARCHS, "torch_version", FRCNN_FAST_TORCH_VERSION);
#else
  return Py_BuildValue(
      "{s:N,s:O,s:s,s:s}", "backends", Py_BuildValue("[s]", "cpu"), "cuda_version", Py_None,
      "cuda_archs", "", "torch_version", FRCNN_FAST_TORCH_VERSION);
#endif
}

PyMethodDef methods[] = {
    {"build_info", build_info, METH_NOARGS, "What this binary was compiled with."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) {
  return PyModule_Create(&module);
}
