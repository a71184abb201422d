# cmake -DINPUT=main.cl -DOUTPUT=expanded.cl -P expand_includes.cmake
cmake_minimum_required(VERSION 3.21)
# Replaces every line `#include "name"` with that file (relative to the
# including file), recursively, as the preprocessor would: a file included
# twice is expanded twice (the kernels instantiate a template file per tile
# width; headers carry their own guards). The run-time OpenCL compiler then
# needs no include path. The text is never split into a CMake list, so
# semicolons survive.
function(expand_file path depth out_var)
  if(depth GREATER 16)
    message(FATAL_ERROR "#include nesting deeper than 16 at ${path}")
  endif()
  math(EXPR inner "${depth} + 1")
  get_filename_component(dir ${path} DIRECTORY)
  file(READ ${path} text)
  string(REGEX MATCHALL "#[ \t]*include[ \t]+\"[^\"]+\"[^\n]*" directives "${text}")
  list(REMOVE_DUPLICATES directives)
  foreach(directive IN LISTS directives)
    string(REGEX REPLACE "^#[ \t]*include[ \t]+\"([^\"]+)\".*$" "\\1" name "${directive}")
    expand_file(${dir}/${name} ${inner} included)
    string(REPLACE "${directive}" "${included}" text "${text}")
  endforeach()
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()

expand_file(${INPUT} 0 expanded)
file(WRITE ${OUTPUT} "${expanded}")
