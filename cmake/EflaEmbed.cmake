# Embedding binary or text files (SPIR-V, OpenCL C, CUDA fatbins) in the
# library as C arrays, with a pure-CMake script (no host tool, no Python).
#
# efla_embed_file(INPUT <file> OUTPUT <file.c> SYMBOL <name> [TEXT])
#   Adds a custom command producing OUTPUT that defines
#     const unsigned char <name>[] (64-byte aligned) and const size_t <name>_size.
#   TEXT appends a terminating NUL (for OpenCL sources).
set(EFLA_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_file.cmake)
function(efla_embed_file)
  cmake_parse_arguments(E "TEXT" "INPUT;OUTPUT;SYMBOL" "DEPENDS" ${ARGN})
  add_custom_command(
    OUTPUT ${E_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${E_INPUT} -DOUTPUT=${E_OUTPUT} -DSYMBOL=${E_SYMBOL}
            -DTEXT=${E_TEXT} -P ${EFLA_EMBED_SCRIPT}
    DEPENDS ${E_INPUT} ${EFLA_EMBED_SCRIPT} ${E_DEPENDS}
    COMMENT "Embedding ${E_SYMBOL}"
    VERBATIM)
endfunction()
