module odin.local/tools/images/pause

go 1.25.0
