# Warnings, POSIX level and sanitizers for every efla target.
function(efla_target_defaults target)
  if(UNIX)
    target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L)
  endif()
  if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
                                             -Wno-unused-parameter)
    if(EFLA_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  if(EFLA_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${EFLA_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${EFLA_SANITIZE})
  endif()
endfunction()
