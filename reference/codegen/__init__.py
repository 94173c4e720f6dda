"""nano-codegen: generate a program, verify it in a sandbox, retry with the feedback."""
