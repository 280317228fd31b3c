module image-gateway/pause

go 1.22
